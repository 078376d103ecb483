"""Masking for logs: never a full phone number or email address at INFO."""

from __future__ import annotations


def mask(address: str | None) -> str:
    """``+16175550123`` → ``+161******23``; ``ann@b.example`` → ``a**@b.example``."""
    if not address:
        return "-"
    if "@" in address:
        local, _, domain = address.rpartition("@")
        return f"{local[:1]}{'*' * max(len(local) - 1, 1)}@{domain}"
    keep = 4 if len(address) > 8 else 1
    return f"{address[:keep]}{'*' * max(len(address) - keep - 2, 1)}{address[-2:]}"
