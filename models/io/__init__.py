"""Files in and out: frames and videos, mask image folders, checkpoint downloads."""
