"""python-socketio's AsyncServer with AsyncRedisManager, as a peer (see app.py)."""
