"""The FFmpeg transcoding worker: takes one job at a time from the jobs queue,
turns the uploaded original into an fMP4 HLS ladder with a poster and a
scrubbing sprite, uploads it, and moves the video's record to READY or FAILED.
"""
