/* shim_placeholder.c - stands in until the LD_PRELOAD layer lands (issue 4). */
int bs_shim_placeholder_unused;
int bs_shim_placeholder_unused = 0;
