"""The yardstick: the Channels tutorial's chat room speaking the chat's frames (see consumers.py)."""
