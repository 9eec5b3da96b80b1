"""Where capture metadata lives besides the EXIF IFDs exifread parses: the blocks of each
container, XMP, damaged IFDs read leniently, and camera vendors' own blocks (``exif`` uses them)."""
