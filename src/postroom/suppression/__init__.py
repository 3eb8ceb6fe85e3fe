"""The suppression list: addresses a tenant must not mail, per tenant and optionally per sending domain or topic."""
