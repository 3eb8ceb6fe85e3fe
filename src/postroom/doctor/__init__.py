"""``postroom doctor``: checks a sending domain's DNS (SPF, DKIM, DMARC, MX, MTA-STS) and says, in plain words, what
is wrong and which record to publish."""
