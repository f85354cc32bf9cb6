"""What a run does and leaves behind: its trainer and callbacks, what it learned, the files, report and
pictures it writes, its tracking, and what a sweep of runs adds up to."""
