"""Synthetic textured scenes with exact depth and poses, rendered by vectorised ray casting:
``textures`` (procedural and photo textures), ``scene`` (boxes, lighting, random rooms and a
corridor), ``raycast`` (ray casting, clearance, rendering), ``paths`` (camera poses,
trajectories, intrinsics) and ``folders`` (rendered scene folders on disk). It imports only
``geometry`` from the package, so training (``training/``) and the runtime demo (``ros.demo``)
both use it without depending on each other."""
