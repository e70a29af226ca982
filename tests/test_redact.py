"""No credential survives into a text meddx prints or stores."""

from __future__ import annotations

import pytest

from meddx.redact import redact


def test_the_password_of_every_address_in_a_text_is_masked() -> None:
    text = (
        "API request to http://bob:s3cr%40t@127.0.0.1:5000/api/2.0 failed; "
        "retrying https://alice:p@ss@mlflow.example.org/api"
    )
    assert redact(text) == (
        "API request to http://bob:***@127.0.0.1:5000/api/2.0 failed; "
        "retrying https://alice:***@mlflow.example.org/api"
    )


def test_addresses_without_a_password_are_left_as_they_are() -> None:
    text = "http://127.0.0.1:5000/api, sqlite:////tmp/mlflow.db, https://bob@host/x, a:b@c"
    assert redact(text) == text


@pytest.mark.parametrize(
    "variable", ["MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "AWS_SECRET_ACCESS_KEY"]
)
def test_the_value_of_a_secret_environment_variable_is_masked_anywhere(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "hunter2-planted")
    assert redact("401 for token hunter2-planted (user bob)") == "401 for token *** (user bob)"
