"""catbrain: learn prediction models from data, from a cat's threat score to tomorrow's weather.

Importing the package is cheap; the heavy parts (Lightning, the tasks) load when used.
"""

__version__ = "0.1.0"
