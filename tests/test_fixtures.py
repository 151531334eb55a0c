"""The SendGrid schema copy in tests/fixtures is SendGrid's published file, with one override."""

from __future__ import annotations

import hashlib
import re

from tests.support.fake_sendgrid import SCHEMA, load_validator


def test_schema_copy_is_the_published_file():
    stated = re.search(r"sha256 of the file as written:\s*`([0-9a-f]{64})`",
                       (SCHEMA.parent / "README.md").read_text(encoding="utf-8"))
    assert stated, "the fixture README states the schema's sha256"
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == stated.group(1)


def test_only_top_level_custom_args_is_overridden():
    validator = load_validator()
    body = {"personalizations": [{"to": [{"email": "a@example.org"}]}],
            "from": {"email": "news@example.org"}, "subject": "s",
            "content": [{"type": "text/plain", "value": "v"}]}
    assert validator.is_valid(dict(body, custom_args={"campaign": "2011-05"}))
    assert not validator.is_valid(dict(body, custom_args="2011-05"))
    assert not validator.is_valid(dict(body, custom_args={"n": 1}))
