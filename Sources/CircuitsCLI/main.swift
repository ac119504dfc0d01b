print("circuits")
