"""Order webhooks from Shopify and WooCommerce turned into order mails: confirmation, shipping, refund, cancellation
and abandoned-checkout reminders, each sent once however often the platform delivers its webhook."""
