"""The private apt source for Consul is derived from the machine's own Debian source."""

from __future__ import annotations

from devcluster.fetch_consul import Mirror, mirror_from_deb822, mirror_from_one_line

BOOKWORM_DEB822 = """\
Types: deb
# a snapshot comment
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""


def test_the_main_archive_and_its_keyring_come_from_the_deb822_sources() -> None:
    mirror = mirror_from_deb822(BOOKWORM_DEB822)
    assert mirror == Mirror("http://mirror.example/debian", "/usr/share/keyrings/debian-archive-keyring.gpg")
    assert mirror.source_line() == ("deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
                                    "http://mirror.example/debian bullseye main\n")


def test_security_only_or_disabled_sources_are_not_taken() -> None:
    security_first = BOOKWORM_DEB822.split("\n\n")[1]
    assert mirror_from_deb822(security_first) is None
    assert mirror_from_deb822("Types: deb\nEnabled: no\nURIs: http://m/debian\nSuites: bookworm\n") is None
    assert mirror_from_deb822("Types: deb-src\nURIs: http://m/debian\nSuites: bookworm\n") is None


def test_one_line_sources_are_understood_with_and_without_options() -> None:
    text = ("# comment\ndeb http://security.example/debian-security bookworm-security main\n"
            "deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main contrib\n")
    assert mirror_from_one_line(text) == Mirror("http://m.example/debian", "/k.gpg")
    assert mirror_from_one_line("deb http://m.example/debian bookworm main\n") == \
        Mirror("http://m.example/debian", None)
    assert Mirror("http://m.example/debian", None).source_line() == "deb http://m.example/debian bullseye main\n"
