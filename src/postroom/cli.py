"""``postroom`` command line: run the local stack, manage API keys."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence


def _cmd_local(_: argparse.Namespace) -> int:
    from postroom.local.stack import LocalStack, StackConfig

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    stack = LocalStack(StackConfig.from_env()).start()
    domains = stack.parameters.get("SendingDomains", "")
    sender = f"shop@{domains.split(',')[0].split('=')[0].strip()}" if domains else "shop@example.com"
    print(f"""
Postroom local stack is up.
  API             {stack.api_url}
  API key         {stack.api_key}
  AWS emulation   {stack.aws_endpoint}  (moto; resources created from template.yaml)
  sending domains {domains}
  default path    {stack.parameters.get("DefaultDelivery")}""")
    if stack.config.sandbox:
        print(
            f"  outbound SMTP   sandbox: every MX resolves to 127.0.0.1:{stack.sink.port}; mail lands in {stack.outbox}"
        )
    else:
        params = stack.parameters
        print(f"  outbound SMTP   MX via {params.get('DnsNameservers')}, port {params.get('SmtpPort')}")
    if getattr(stack, "inbound", None) is not None:
        inbound = stack.parameters.get("InboundDomains", "").split(",")[0]
        catch_all = stack.parameters.get("InboundCatchAll") or "none"
        print(f"""  inbound domains {stack.parameters.get("InboundDomains")}  (catch-all: {catch_all})
  inbound SMTP    {stack.inbound.host}:{stack.inbound.port}  (plays SES receiving; mail is filed into mailboxes)
Receive a message and read the inbox:
  swaks --server {stack.inbound.host}:{stack.inbound.port} --to support@{inbound} --from ann@example.org
  curl -s '{stack.api_url}/v1/mailboxes/support@{inbound}:inbox/messages' -H 'Authorization: Bearer {stack.api_key}'""")
    print(
        f"""
Send a message:
  curl -s {stack.api_url}/v1/messages -H 'Authorization: Bearer {stack.api_key}' \\
    -H 'Content-Type: application/json' \\
    -d '{{"from": "Shop <{sender}>", "to": ["ann@example.org"], "subject": "Hello", "text": "It works."}}'
Then read its status:
  curl -s {stack.api_url}/v1/messages/<id> -H 'Authorization: Bearer {stack.api_key}'

Ctrl-C stops the stack.""",
        flush=True,
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
    return 0


def _keys_store(table: str | None) -> object:
    from postroom import aws
    from postroom.store.keys import ApiKeyStore

    table = table or os.environ.get("POSTROOM_TABLE")
    if not table:
        raise SystemExit("give --table (the stack's TableName output) or set POSTROOM_TABLE")
    return ApiKeyStore(aws.client("dynamodb"), table)


def _cmd_keys_create(args: argparse.Namespace) -> int:
    from postroom.auth import parse_scopes

    try:
        scopes = parse_scopes(args.scopes)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    store = _keys_store(args.table)
    mailboxes = frozenset(m.strip().lower() for m in (args.mailboxes or "").split(",") if m.strip())
    key = store.create(name=args.name, scopes=scopes, tenant=args.tenant, mailboxes=mailboxes)  # type: ignore[attr-defined]
    # The key is shown once; only its hash is stored.
    print(key)
    print(
        f"scopes: {', '.join(sorted(scopes))}; tenant: {args.tenant}. Store it now: it cannot be shown again.",
        file=sys.stderr,
    )
    return 0


def _cmd_keys_disable(args: argparse.Namespace) -> int:
    count = _keys_store(args.table).disable(args.key_id)  # type: ignore[attr-defined]
    print(f"disabled {count} key(s)")
    return 0 if count else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="postroom", description="Postroom: transactional email relay for AWS.")
    sub = parser.add_subparsers(dest="command", required=True)

    local = sub.add_parser("local", help="run the whole stack locally on loopback (no AWS account, no Docker)")
    local.set_defaults(func=_cmd_local)

    keys = sub.add_parser("keys", help="manage API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create an API key and print it once")
    create.add_argument("--name", required=True, help="what the key is for, e.g. 'shop backend'")
    create.add_argument("--scopes", default="messages:send,messages:read", help="comma list, or 'all'")
    create.add_argument("--tenant", default="default", help="keys only see their own tenant's messages")
    create.add_argument("--table", help="DynamoDB table (default: $POSTROOM_TABLE)")
    create.add_argument(
        "--mailboxes",
        help="addresses whose mailboxes the key may use: support@shop.example, *@shop.example or *; comma list",
    )
    create.set_defaults(func=_cmd_keys_create)
    disable = keys_sub.add_parser("disable", help="disable keys by id (the id shown in logs, a hash prefix)")
    disable.add_argument("key_id")
    disable.add_argument("--table", help="DynamoDB table (default: $POSTROOM_TABLE)")
    disable.set_defaults(func=_cmd_keys_disable)
    addresses = sub.add_parser("addresses", help="manage inbound addresses (each gets Inbox, Archive and Trash)")
    addresses_sub = addresses.add_subparsers(dest="addresses_command", required=True)
    add = addresses_sub.add_parser("create", help="register an inbound address")
    add.add_argument("address")
    add.add_argument("--table", help="DynamoDB table (default: $POSTROOM_TABLE)")
    add.set_defaults(func=_cmd_addresses_create)
    return parser


def _cmd_addresses_create(args: argparse.Namespace) -> int:
    from postroom import aws
    from postroom.mailbox.store import MailboxStore

    table = args.table or os.environ.get("POSTROOM_TABLE")
    if not table:
        raise SystemExit("give --table (the stack's TableName output) or set POSTROOM_TABLE")
    if "@" not in args.address or "+" in args.address.partition("@")[0]:
        raise SystemExit("give a base address like support@shop.example (no +tag)")
    created = MailboxStore(aws.client("dynamodb"), table).create_address(args.address)
    print(f"{args.address.lower()}: {'created' if created else 'already registered'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
