"""The local stack's cheaper backup for moto's TransactWriteItems must roll back exactly as moto's own did: a
transaction whose last condition fails leaves every item it updated, put or deleted as it was."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from postroom.testing import moto_transactions

TABLE = "t"


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    moto_transactions.install()
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for sk in ("a", "b", "c"):
            client.put_item(TableName=TABLE, Item={"pk": {"S": "box"}, "sk": {"S": sk}, "n": {"N": "1"}})
        yield client


def items(client: object) -> dict[str, str]:
    found = client.scan(TableName=TABLE)["Items"]  # type: ignore[attr-defined]
    return {item["sk"]["S"]: item["n"]["N"] for item in found}


def test_a_failed_transaction_leaves_every_item_as_it_was(dynamodb: object) -> None:
    key = {"pk": {"S": "box"}}
    # WHEN a transaction updates a, puts d, deletes b, and then fails a condition on c
    with pytest.raises(dynamodb.exceptions.TransactionCanceledException):  # type: ignore[attr-defined]
        dynamodb.transact_write_items(  # type: ignore[attr-defined]
            TransactItems=[
                {
                    "Update": {
                        "TableName": TABLE,
                        "Key": {**key, "sk": {"S": "a"}},
                        "UpdateExpression": "SET n = :two",
                        "ExpressionAttributeValues": {":two": {"N": "2"}},
                    }
                },
                {"Put": {"TableName": TABLE, "Item": {**key, "sk": {"S": "d"}, "n": {"N": "9"}}}},
                {"Delete": {"TableName": TABLE, "Key": {**key, "sk": {"S": "b"}}}},
                {
                    "ConditionCheck": {
                        "TableName": TABLE,
                        "Key": {**key, "sk": {"S": "c"}},
                        "ConditionExpression": "n = :zero",
                        "ExpressionAttributeValues": {":zero": {"N": "0"}},
                    }
                },
            ]
        )
    # THEN the table is as before
    assert items(dynamodb) == {"a": "1", "b": "1", "c": "1"}
    # AND a transaction that succeeds applies every change
    dynamodb.transact_write_items(  # type: ignore[attr-defined]
        TransactItems=[
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": {**key, "sk": {"S": "a"}},
                    "UpdateExpression": "SET n = :two",
                    "ExpressionAttributeValues": {":two": {"N": "2"}},
                }
            },
            {"Delete": {"TableName": TABLE, "Key": {**key, "sk": {"S": "b"}}}},
        ]
    )
    assert items(dynamodb) == {"a": "2", "c": "1"}
