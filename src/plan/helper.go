package plan

// ClearsKernelHelper says whether the userspace PPTP engine must take the
// kernel's pptp helper off the control connections it carries: when the
// kernel has the helper, fw4 may assign it (on zones without masquerade),
// and helper and engine would both rewrite Call IDs.
func ClearsKernelHelper(c Caps) bool { return c.PPTPHelper }
