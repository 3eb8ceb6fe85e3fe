"""The suite's speed-up of moto's TransactWriteItems (postroom.testing.moto_transactions) keeps its semantics: a
cancelled transaction leaves every table as it was, a committed one writes every item."""

from __future__ import annotations

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from postroom.testing import moto_transactions


def _table(client: object, name: str) -> None:
    client.create_table(  # type: ignore[attr-defined]
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def _keys(client: object, name: str) -> list[str]:
    return sorted(item["pk"]["S"] for item in client.scan(TableName=name)["Items"])  # type: ignore[attr-defined]


def test_a_cancelled_transaction_over_two_tables_changes_neither() -> None:
    moto_transactions.install()
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        _table(ddb, "a")
        _table(ddb, "b")
        # GIVEN a committed transaction of several items in two tables
        ddb.transact_write_items(
            TransactItems=[{"Put": {"TableName": t, "Item": {"pk": {"S": f"{t}{i}"}}}} for t in "ab" for i in range(3)]
        )
        assert (_keys(ddb, "a"), _keys(ddb, "b")) == (["a0", "a1", "a2"], ["b0", "b1", "b2"])
        # WHEN a transaction writes to both and its last condition fails
        with pytest.raises(ClientError) as cancelled:
            ddb.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": "a", "Item": {"pk": {"S": "a-new"}}}},
                    {"Delete": {"TableName": "b", "Key": {"pk": {"S": "b0"}}}},
                    {
                        "Put": {
                            "TableName": "a",
                            "Item": {"pk": {"S": "a1"}},
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        # THEN it is cancelled and both tables are exactly as before
        assert cancelled.value.response["Error"]["Code"] == "TransactionCanceledException"
        assert (_keys(ddb, "a"), _keys(ddb, "b")) == (["a0", "a1", "a2"], ["b0", "b1", "b2"])
