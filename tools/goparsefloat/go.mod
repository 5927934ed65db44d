module thanosbridge/goparsefloat

go 1.24
