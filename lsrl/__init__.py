"""lsrl: compile Linear State Recurrent Language programs to recurrent-network weights."""
