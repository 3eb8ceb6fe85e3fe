"""Other providers' send APIs, translated onto Postroom's one accept path (:mod:`postroom.accept.intake`).

A dialect module only translates: a request in the provider's field names becomes a
:class:`~postroom.accept.compose.MessageInput`, and Postroom's answers and errors become the provider's shapes. Nothing
about delivery, idempotency, suppression or events lives here. A field that cannot be honoured is refused with the
provider's own error, never dropped.
"""
