"""Shop platforms (Shopify, WooCommerce): their webhooks verified, de-duplicated and mapped to events."""
