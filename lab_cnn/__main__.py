from lab_cnn.cli import main

main()
