"""What nginx serves the app with: its limits, and HTTPS (ACME or your own certificate, HSTS)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, model_validator

from ..fields import Hostname, Image, LocalFile, matching
from .section import Section


class Nginx(Section):
    image: Image = "nginx:stable"
    rate_limit: int = Field(20, ge=1, le=100000, description="requests per second allowed from one client address")
    burst: int = Field(40, ge=0, le=100000)
    client_max_body_size: Annotated[str, matching(r"[0-9]+[kmg]?", "a size like 10m")] = "10m"


# Names no public CA issues for (RFC 2606, 6761, 6762 and the like): an app on them serves HTTP unless told otherwise.
PRIVATE_SUFFIXES = ("localhost", "local", "test", "example", "invalid", "internal", "lan", "home.arpa")
IPV4_RULE = r"[0-9]+(\.[0-9]+){3}"
ACME_DIRECTORIES = {
    "letsencrypt": "https://acme-v02.api.letsencrypt.org/directory",
    "staging": "https://acme-staging-v02.api.letsencrypt.org/directory",
}
EMAIL_RULE = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+"


def is_public_name(domain: str) -> bool:
    """A name a public ACME CA could issue for: a dotted DNS name, not an address or a reserved suffix."""
    lowered = domain.lower()
    return ("." in lowered and not re.fullmatch(IPV4_RULE, lowered)
            and not any(lowered == suffix or lowered.endswith("." + suffix) for suffix in PRIVATE_SUFFIXES))


class Hsts(Section):
    """Strict-Transport-Security: browsers use only HTTPS for the site for max_age_seconds."""

    enabled: bool = True
    max_age_seconds: int = Field(63072000, ge=0, le=63072000, description="how long browsers remember (2 years)")
    include_subdomains: bool = False
    preload: bool = Field(False, description="ask to be preloaded into browsers (hard to undo: off unless asked)")

    @model_validator(mode="after")
    def _preload_rules(self) -> Hsts:
        if self.preload and not (self.include_subdomains and self.max_age_seconds >= 31536000):
            raise ValueError("expected include_subdomains: true and max_age_seconds of at least 31536000 with "
                             "preload (the preload list accepts nothing less)")
        return self


class Tls(Section):
    """HTTPS for the app's domains: one certificate from an ACME CA (certbot on the server), or the user's own."""

    enabled: bool | None = Field(None, description="true or false; unset: on when every domain is a public DNS name")
    acme_directory: Annotated[str, matching(r"letsencrypt|staging|https://\S+", "letsencrypt, staging or an "
                                            "https:// ACME directory URL")] = "letsencrypt"
    ca_bundle: LocalFile | None = Field(None, description="a PEM file of the CA that signs the ACME server's own "
                                        "HTTPS certificate (a private CA's; public CAs need none)")
    email: Annotated[str, matching(EMAIL_RULE, "an email address for the CA's expiry notices")] | None = None
    hsts: Hsts = Hsts()
    canonical_host: Hostname | None = Field(None, description="the one domain the site is served on; the other "
                                            "domains answer with a 301 to it")
    certificate_file: LocalFile | None = Field(None, description="a PEM certificate chain of your own (instead of ACME)")
    key_file: LocalFile | None = Field(None, description="the PEM private key of certificate_file (kept secret)")

    @property
    def acme_url(self) -> str:
        return ACME_DIRECTORIES.get(self.acme_directory, self.acme_directory)

    @property
    def uses_acme(self) -> bool:
        return self.certificate_file is None

    @model_validator(mode="after")
    def _own_certificate_is_a_pair(self) -> Tls:
        if (self.certificate_file is None) != (self.key_file is None):
            raise ValueError("expected both certificate_file and key_file (your own certificate), or neither (ACME)")
        return self
