"""encode's ``broadcaster`` over Redis with Starlette, as a peer (see app.py)."""
