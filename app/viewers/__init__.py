"""Case viewers: 2D image, 3D volume (MPR + volume rendering), video; ``viewer_factory`` picks one by kind."""
