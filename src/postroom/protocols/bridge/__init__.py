"""``postroom bridge``: standard mail protocols on the user's own machine, translated onto Postroom's HTTP API."""
