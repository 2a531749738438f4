"""Reading and writing: scene folders, depth registration, image decoding, rosbags, map files.
May import: ``geometry``, ``models``."""
