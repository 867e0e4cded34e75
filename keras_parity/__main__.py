from keras_parity import main

main()
