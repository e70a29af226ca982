"""Secrets and private paths out of every text meddx writes: messages, logs, spools, MLflow.

A tracking address may carry a password (`https://bob:secret@host`), and MLflow repeats that
address in its own error texts; credentials may also sit in the environment variables that
MLflow and the artifact stores read. Everything meddx prints or stores passes through
`redact` first, so that no error path can put a credential into a terminal log, a file or a
shared tracking server. `withhold` does the same for config values that may name a patient
(the folder of a user's own images): params and `config.yaml` get a neutral token instead.
"""

from __future__ import annotations

import copy
import os
import re

from omegaconf import DictConfig, OmegaConf

MASK = "***"
WITHHELD = "<folder>"
PRIVATE_KEYS = ("data.image.folder.path",)
# Environment variables whose values are credentials (MLflow, S3 and Azure artifact stores).
SECRET_VARIABLES = (
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_CLIENT_SECRET",
)
# Shorter values are left alone: masking every "ab" in a text would garble it, not protect it.
MIN_SECRET_LENGTH = 3
# scheme://user:password@ -- the password is everything up to the last "@" before the host.
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]*:)(?P<password>[^\s/]*)@")


def redact(text: str) -> str:
    """`text` with URI passwords and the values of `SECRET_VARIABLES` replaced by `MASK`."""
    for variable in SECRET_VARIABLES:
        value = os.environ.get(variable, "")
        if len(value) >= MIN_SECRET_LENGTH:
            text = text.replace(value, MASK)
    return _USERINFO.sub(lambda match: f"{match['head']}{MASK}@", text)


def withhold(cfg: DictConfig) -> DictConfig:
    """A copy of `cfg` for params and the `config.yaml` artifact, `PRIVATE_KEYS` withheld.

    The folder of a user's own images is often named after the patient or the study.
    """
    shared = copy.deepcopy(cfg)
    for key in PRIVATE_KEYS:
        if OmegaConf.select(shared, key) is not None:
            OmegaConf.update(shared, key, WITHHELD)
    return shared
