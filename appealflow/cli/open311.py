"""`appealflow open311 key add|revoke|list`: the client apps allowed to file GeoReport requests."""

from __future__ import annotations

import argparse
import sys

from appealflow.models.appeals.open311 import DEFAULT_RATE_LIMIT, ClientError, add_client, list_clients, revoke_client
from appealflow.models.storage.db import session_scope
from appealflow.settings import get_settings


def register_cli(commands) -> None:
    """Add the `open311` command to the `appealflow` argument parser."""
    open311 = commands.add_parser("open311", help="Open311 GeoReport v2 client apps").add_subparsers(required=True)
    key = open311.add_parser("key", help="client apps' API keys").add_subparsers(required=True)
    p = key.add_parser("add", help="register a client app and print its API key (shown once)")
    p.add_argument("name")
    p.add_argument("--rate-limit", default=DEFAULT_RATE_LIMIT, help="like 60/minute (default) or 1000/day")
    p.set_defaults(func=_add)
    p = key.add_parser("revoke", help="revoke a client app's key at once")
    p.add_argument("name")
    p.set_defaults(func=_revoke)
    key.add_parser("list", help="client apps, their limits and whether revoked").set_defaults(func=_list)


def _session():
    return session_scope(get_settings().sqlalchemy_url)


def _add(args: argparse.Namespace) -> None:
    try:
        with _session() as session:
            key = add_client(session, args.name, args.rate_limit)
    except ClientError as error:
        sys.exit(f"appealflow: {error}")
    print(key)


def _revoke(args: argparse.Namespace) -> None:
    try:
        with _session() as session:
            revoke_client(session, args.name)
    except ClientError as error:
        sys.exit(f"appealflow: {error}")
    print(f"revoked the key of {args.name}")


def _list(_args: argparse.Namespace) -> None:
    with _session() as session:
        for client in list_clients(session):
            print(f"{client.name}\t{client.rate_limit}\t{'revoked' if client.revoked else 'active'}")
