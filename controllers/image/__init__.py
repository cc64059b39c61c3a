"""Build the agent image, with or without a container registry.

Two ways to get the same kind of image (tmux, bash, git, coreutils, a non-root ``agent`` user,
``/workspace``):

- ``dockerfile``: ``docker build`` on ``containers/agent/`` (Debian slim). Needs its base image,
  so it only works where a registry was reachable at some point.
- ``offline``: a root filesystem assembled from this host's own binaries, their shared libraries
  (found with ``ldd``), terminfo and a few generated ``/etc`` files, streamed as a tar into
  ``docker import``. No network, about a second. Many real hosts are air-gapped, and so are ours.

``auto`` takes the Dockerfile when its base image is already present locally (pulling could hang
on an unreachable registry), else the offline path; the result says which one ran.

One module per concept: ``host`` finds what the offline image takes from this host,
``rootfs`` lays it out as a root filesystem, ``agents`` adds Claude Code, Codex or aider from
this host (``elf`` rewrites a relocated Python's run paths), ``build`` turns that (or the
Dockerfile) into an image. Command line: ``luzia image build [--tag T]
[--method auto|offline|dockerfile] [--agent claude|codex|aider[=PATH]]...``, ``luzia image ls``.
"""

from controllers.errors import HostToolMissing, ImageBuildError
from controllers.image.agents import AGENTS, HostAgent, find_agents
from controllers.image.build import (
    AGENT_CONTEXT_DIR,
    BASE_IMAGE,
    DEFAULT_IMAGE,
    METHODS,
    BuildResult,
    ImageInfo,
    agent_images,
    build_agent_image,
    ensure_agent_image,
    image_agents,
    image_exists,
    image_labels,
)
from controllers.image.rootfs import (
    AGENT_HOME,
    AGENT_UID,
    RootFS,
    assemble_rootfs,
    write_rootfs_tar,
)

__all__ = [
    "AGENTS",
    "AGENT_CONTEXT_DIR",
    "AGENT_HOME",
    "AGENT_UID",
    "BASE_IMAGE",
    "DEFAULT_IMAGE",
    "METHODS",
    "BuildResult",
    "HostAgent",
    "HostToolMissing",
    "ImageBuildError",
    "ImageInfo",
    "RootFS",
    "agent_images",
    "assemble_rootfs",
    "build_agent_image",
    "ensure_agent_image",
    "find_agents",
    "image_agents",
    "image_exists",
    "image_labels",
    "write_rootfs_tar",
]
