"""The six entry points side by side (train, evaluate, predict, export, search, data), and how a command starts."""
