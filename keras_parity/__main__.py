from keras_parity.cli import main

main()
