print("hl-bench")
