"""The embedded runtime: `mailsage serve` runs the real Lambda handlers on one machine."""
