"""Search strategies (one file each) behind one ask/tell interface, and the Study that drives them."""
