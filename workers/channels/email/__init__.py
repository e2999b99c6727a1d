"""Email over SMTP: the pooled client, MIME building, DKIM signing and bounce processing."""
