"""Small helpers over the DynamoDB low-level client (cheaper to import and create than the resource layer)."""

from __future__ import annotations

from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _serialize(value: Any) -> dict[str, Any]:
    # Fast path for the scalar types items are made of (boto3's TypeSerializer costs tens of µs per attribute, a
    # measurable share of the accept path); everything else goes through it.
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is bool:
        return {"BOOL": value}
    if kind is int:
        return {"N": str(value)}
    serialized: dict[str, Any] = _serializer.serialize(value)
    return serialized


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    return {key: _serialize(value) for key, value in values.items() if value is not None}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {key: _deserializer.deserialize(value) for key, value in item.items()}


def is_conditional_failure(exc: Exception) -> bool:
    response = getattr(exc, "response", None) or {}
    code: object = response.get("Error", {}).get("Code")
    return code == "ConditionalCheckFailedException"
