"""The firing path: from a timer falling due to its outcome recorded (see due_loop)."""
