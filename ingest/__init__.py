"""What is on the seized media: images, volumes, filesystems, file entries.

The only room that imports pytsk3 and pyewf. Import submodules directly
(``from ingest.location import FileEntry``) so light users do not load native code.
"""
