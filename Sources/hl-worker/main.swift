print("hl-worker")
