"""The Garden HTTP API: routes that parse requests, call the backend and write replies."""
