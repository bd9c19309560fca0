"""The web app's engines: the parts with threads and state, free of Flask so that they can be
used and tested on their own. The blueprints beside this package only translate HTTP to calls here.

- `jobs.JobManager`: video uploads as bounded background jobs in a jobs folder
- `broadcast.FrameBroadcaster`: one capture thread for the server-side source, shared by viewers
- `sessions.CameraSessions`: one tracker per browser tab, one frame at a time each
- `limits.Slots` and `limits.Busy`: bounded in-flight work, and the refusal when it is full
"""
