""":class:`ConfigurationProblem`: a setting the outside world refuses at start-up (a broker
that rejects the password or the certificate, an ACL that is missing), as opposed to a
value that does not parse (:class:`~consumer.settings.reader.SettingsError`). Both end the
process with exit code 2."""

from __future__ import annotations


class ConfigurationProblem(Exception):
    """``setting``: the variable(s) most likely wrong; ``cause``: what was seen and why.
    ``retriable``: waiting may help (a broker not up yet), as opposed to a refusal."""

    def __init__(self, setting: str, cause: str, *, retriable: bool = False) -> None:
        super().__init__(f"{setting}: {cause}")
        self.setting = setting
        self.cause = cause
        self.retriable = retriable
