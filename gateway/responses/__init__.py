"""The Responses API (``/v1/responses``), translated at the edge into the gateway's chat core."""
