"""``vod``: the command-line client of the platform's HTTP API.

``client.api`` speaks the API, ``client.uploader`` is the multipart upload
engine (parallel, resumable, retrying), ``client.state`` keeps what a resumed
upload needs, and ``client.cli`` is the console script.
"""
