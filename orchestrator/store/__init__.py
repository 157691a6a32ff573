"""The only code that talks to Redis: keys, scripts, and one module per record it keeps."""
