"""Linux network namespaces and the commands run inside them, for the lab and for netns guests."""
