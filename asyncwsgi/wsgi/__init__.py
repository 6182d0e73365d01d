"""What the app sees and the hand-off between threads. [both]

The environ and proxy-header rewriting run on the loop, the app call on a pool thread, the bridge
and the bounded pool on both. Nothing here touches a socket; nothing here reads the
configuration (values are passed in)."""
