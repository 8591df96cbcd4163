"""The MediaConvert transcoder's runtime: the job settings built from the
shared ladder, and the Lambda that turns MediaConvert's job state changes into
record updates."""
