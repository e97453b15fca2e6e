"""The Starlette tutorial's broadcast, as a peer (see app.py)."""
