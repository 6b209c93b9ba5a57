"""P4: the bytes of the session cookie, signed and signed+encrypted, next to Starlette's session
cookie holding the same tokens."""

from __future__ import annotations

import json
import time
from typing import Any

from benchmarks.common import Codec, cookie_header_from_set_cookies
from benchmarks.suite import LABELS, Context, Section


def measure(ctx: Context) -> dict[str, Any]:
    cookies = ctx.cookies
    tokens = cookies.tokens
    out: dict[str, Any] = {
        "token_set": {
            "access_token_bytes": len(tokens.access_token),
            "id_token_bytes": len(tokens.id_token),
            "refresh_token_chars": len(tokens.refresh_token),
            "claims_json_bytes": len(json.dumps(tokens.claims, separators=(",", ":"))),
        },
    }
    for kind in ("signed", "encrypted"):
        value, set_cookies = Codec.of(cookies.minters[kind]).mint(tokens.session(), time.time())
        out[f"renewal_{kind}"] = {
            "value_bytes": len(value), "chunks": len(set_cookies),
            "set_cookie_bytes": sum(len(c) for c in set_cookies),
            "cookie_header_bytes": len(cookie_header_from_set_cookies(set_cookies)),
        }
    header, set_cookies = cookies.starlette[0]
    value = set_cookies[0].split(";", 1)[0].split("=", 1)[1]
    out["starlette_session"] = {
        "value_bytes": len(value), "chunks": len(set_cookies),
        "set_cookie_bytes": sum(len(c) for c in set_cookies),
        "cookie_header_bytes": len(header),
        "over_4096_browser_limit": any(len(c) > 4096 for c in set_cookies),
    }
    return out


# Measured first, in no time: neither logged nor followed by a load-average sample.
SECTIONS: tuple[Section, ...] = (Section("p4_cookie_bytes", measure, logged=False),)


def rows(results: dict[str, Any]) -> list[str]:
    p4 = results["p4_cookie_bytes"]
    ts = p4["token_set"]
    lines = ["", f"P4 cookie bytes: access token {ts['access_token_bytes']} B (RS256 JWT with "
             f"aud), ID token {ts['id_token_bytes']} B, refresh token "
             f"{ts['refresh_token_chars']} chars, claims {ts['claims_json_bytes']} B"]
    lines.append(f"  {'':42} {'value':>7} {'chunks':>7} {'Set-Cookie':>11} {'Cookie hdr':>11}")
    for key in ("renewal_signed", "renewal_encrypted", "starlette_session"):
        row = p4[key]
        lines.append(f"  {LABELS[key]:42} {row['value_bytes']:>7} {row['chunks']:>7} "
                     f"{row['set_cookie_bytes']:>11} {row['cookie_header_bytes']:>11}")
    return lines


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    return []
